"""Configuration from the environment, under the variable names existing deployments use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.outbound import PrivateAllowance, parse_allowance


class ConfigError(Exception):
    """The environment holds a value Tapeline cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Every knob, with its default. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    database_url: str | None = None
    tapeline_data_dir: Path = Path(".tapeline")

    transcribe_sync_max_bytes: int = Field(10_485_760, ge=0)
    transcribe_sync_max_duration_ms: int = Field(60_000, ge=0)
    tasks_inline_processing: bool = False

    worker_max_retries: int = Field(3, ge=0)
    worker_retry_delays: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [5_000, 30_000, 120_000]
    )
    max_concurrent_jobs: int = Field(3, ge=1)
    poll_interval_ms: int = Field(2_000, ge=10)
    job_timeout_ms: int = Field(1_800_000, ge=100)
    job_lease_ms: int = Field(30_000, ge=300)
    worker_shutdown_grace_ms: int = Field(25_000, ge=0)

    sse_heartbeat_ms: int = Field(15_000, ge=100)
    sse_retry_ms: int = Field(3_000, ge=0)
    sse_buffer_messages: int = Field(1_000, ge=1)
    sse_send_timeout_ms: int = Field(10_000, ge=100)

    max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    admin_token: str | None = None
    tapeline_engine: str = "local"

    storage_url: str | None = None
    aws_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_region: str | None = None
    audio_retention_days: float | None = Field(None, gt=0)
    transcript_retention_days: float | None = Field(None, gt=0)
    upload_expiry_hours: float = Field(24, gt=0)
    min_free_disk_mb: int = Field(1_024, ge=0)
    cleanup_interval_ms: int = Field(300_000, ge=100)
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int | None = Field(None, ge=1, le=65535)

    # Reliability (issue 14): what a recording may be, and how the database is reached.
    max_audio_duration_ms: int = Field(36_000_000, ge=1_000)
    database_direct_url: str | None = None
    database_pool_size: int | None = Field(None, ge=1)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    gemini_upload_timeout_ms: int = Field(600_000, ge=100)
    gemini_poll_timeout_ms: int = Field(300_000, ge=100)
    gemini_poll_interval_ms: int = Field(2_000, ge=10)
    gemini_generate_timeout_ms: int = Field(600_000, ge=100)
    gemini_chunk_ms: int = Field(2_700_000, ge=10_000)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_transcribe_model: str = "whisper-1"
    openai_chunk_ms: int = Field(600_000, ge=10_000)
    openai_max_upload_bytes: int = Field(24 * 1024**2, ge=100_000)
    engine_request_timeout_ms: int = Field(120_000, ge=100)
    engine_max_attempts: int = Field(4, ge=1)
    engine_retry_base_ms: int = Field(1_000, ge=0)
    engine_retry_max_ms: int = Field(60_000, ge=0)
    engine_max_concurrent_chunks: int = Field(4, ge=1)
    analysis_engine: str | None = None
    analysis_model: str | None = None
    openai_chunk_format: Literal["flac", "mp3"] = "flac"
    gemini_chunk_format: Literal["flac", "mp3"] = "mp3"

    whisper_model: str = "base"
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str | None = None
    whisper_batch_size: int = Field(8, ge=1, le=64)
    whisper_models_dir: Path | None = None
    whisper_models_allowed: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tapeline_worker_engines: Annotated[list[str], NoDecode] | None = None

    # Limits a token holder cannot get around (per owner, per process, per request).
    auth_failures_per_minute: int = Field(20, ge=0)
    metrics_token: SecretStr | None = None
    metrics_host: str = "127.0.0.1"
    gemini_models_allowed: Annotated[list[str], NoDecode] = Field(default_factory=list)
    openai_models_allowed: Annotated[list[str], NoDecode] = Field(default_factory=list)
    owner_max_stored_bytes: int = Field(20 * 1024**3, ge=0)
    owner_max_open_uploads: int = Field(10, ge=0)
    max_streams_per_owner: int = Field(20, ge=0)
    serve_limit_concurrency: int | None = Field(20_000, ge=1)
    cpu_worker_memory_mb: int = Field(4_096, ge=0)
    staging_max_age_hours: float = Field(6, gt=0)

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters (try: openssl rand -hex 32)")
        return value

    @field_validator(
        "whisper_models_allowed",
        "tapeline_worker_engines",
        "gemini_models_allowed",
        "openai_models_allowed",
        mode="before",
    )
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @property
    def models_dir(self) -> Path:
        """Where named Whisper models are downloaded: WHISPER_MODELS_DIR or <data dir>/models."""
        return self.whisper_models_dir or self.tapeline_data_dir / "models"

    def secret_values(self) -> list[str]:
        """Values no log line may carry: the admin and metrics tokens, provider and S3 keys."""
        values = [self.admin_token, self.aws_secret_access_key]
        for secret in (self.gemini_api_key, self.openai_api_key, self.metrics_token):
            values.append(secret.get_secret_value() if secret is not None else None)
        return [v for v in values if v]

    def models_allowed(self, engine: str) -> list[str] | None:
        """The models a request may name for a cloud `engine`: the allow-list, else only the
        configured model (a user never spends the operator's key on a model not chosen).
        None: this engine has no list here."""
        if engine == "gemini":
            return self.gemini_models_allowed or [self.gemini_model]
        if engine == "openai":
            return self.openai_models_allowed or [self.openai_transcribe_model]
        return None

    webhook_retry_delays: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [
            5_000,
            300_000,
            1_800_000,
            7_200_000,
            18_000_000,
            36_000_000,
            36_000_000,
        ]
    )
    webhook_timeout_ms: int = Field(15_000, ge=100)
    webhook_allow_private: Annotated[PrivateAllowance, NoDecode] = PrivateAllowance()
    fetch_allow_private: Annotated[PrivateAllowance, NoDecode] = PrivateAllowance()
    fetch_timeout_ms: int = Field(600_000, ge=100)
    fetch_max_redirects: int = Field(5, ge=0, le=20)

    @field_validator("webhook_allow_private", "fetch_allow_private", mode="before")
    @classmethod
    def _allowance(cls, value: Any) -> PrivateAllowance:
        return parse_allowance(value)

    @property
    def webhook_max_attempts(self) -> int:
        """The first attempt, then one retry per WEBHOOK_RETRY_DELAYS entry."""
        return len(self.webhook_retry_delays) + 1

    openai_compat_models: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """`/v1` model names: `name=engine` or `name=engine:model`, comma-separated."""

    @field_validator("openai_compat_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        models: dict[str, str] = {}
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            name, sep, target = (side.strip() for side in item.partition("="))
            if not sep or not name or not target or target.startswith(":"):
                raise ValueError("write name=engine or name=engine:model, comma-separated")
            models[name] = target
        return models

    @field_validator("worker_retry_delays", "webhook_retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts:
                raise ValueError("give at least one delay in milliseconds, e.g. 5000,30000,120000")
            return parts
        return value

    @field_validator("worker_retry_delays", "webhook_retry_delays")
    @classmethod
    def _non_negative(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("delays must be zero or more milliseconds")
        return value

    def retry_delay_ms(self, attempt: int) -> int:
        """Delay before retry number `attempt` (1-based); the last delay repeats."""
        delays = self.worker_retry_delays
        return delays[min(attempt, len(delays)) - 1]

    @property
    def max_attempts(self) -> int:
        return self.worker_max_retries + 1


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, turning a validation failure into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            variable = str(err["loc"][0]).upper() if err["loc"] else "?"
            problems.append(f"{variable}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("Invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
