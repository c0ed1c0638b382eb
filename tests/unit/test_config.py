from __future__ import annotations

import pytest

from service.config import ConfigError, load_settings


def test_defaults_match_what_existing_deployments_expect(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_RETRY_DELAYS", "MAX_CONCURRENT_JOBS", "TAPELINE_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.transcribe_sync_max_bytes, s.transcribe_sync_max_duration_ms) == (10485760, 60000)
    assert (s.tasks_inline_processing, s.worker_max_retries, s.max_attempts) == (False, 3, 4)
    assert s.worker_retry_delays == [5000, 30000, 120000]
    assert (s.max_concurrent_jobs, s.poll_interval_ms) == (3, 2000)
    assert (s.job_timeout_ms, s.job_lease_ms, s.tapeline_engine) == (1800000, 30000, "local")


def test_variables_are_read_under_their_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_RETRY_DELAYS", "100, 200")
    monkeypatch.setenv("TASKS_INLINE_PROCESSING", "1")
    monkeypatch.setenv("ADMIN_TOKEN", "s3cret" * 6)
    s = load_settings()
    assert s.worker_retry_delays == [100, 200]
    assert [s.retry_delay_ms(n) for n in (1, 2, 3, 9)] == [100, 200, 200, 200]
    assert s.tasks_inline_processing and s.admin_token == "s3cret" * 6


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_CONCURRENT_JOBS", "lots"),
        ("MAX_CONCURRENT_JOBS", "0"),
        ("WORKER_RETRY_DELAYS", "5000,soon"),
        ("WORKER_RETRY_DELAYS", ","),
        ("JOB_LEASE_MS", "-5"),
        ("ADMIN_TOKEN", "short-admin-token"),
    ],
)
def test_a_bad_value_is_reported_with_its_variable_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_provider_keys_never_show_in_the_settings_repr() -> None:
    settings = load_settings(gemini_api_key="AIza-secret-key", openai_api_key="sk-secret-key")
    assert "AIza-secret-key" not in repr(settings) and "sk-secret-key" not in str(settings)
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "AIza-secret-key"


def test_a_bad_engine_setting_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="ENGINE_REQUEST_TIMEOUT_MS"):
        load_settings(engine_request_timeout_ms=0)
    with pytest.raises(ConfigError, match="OPENAI_CHUNK_FORMAT"):
        load_settings(openai_chunk_format="wav")


def test_openai_compat_models_are_name_to_engine_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_COMPAT_MODELS", "whisper-1=openai, large = local:large-v3,")
    assert load_settings().openai_compat_models == {
        "whisper-1": "openai",
        "large": "local:large-v3",
    }
    monkeypatch.setenv("OPENAI_COMPAT_MODELS", "whisper-1")
    with pytest.raises(ConfigError, match="OPENAI_COMPAT_MODELS"):
        load_settings()
