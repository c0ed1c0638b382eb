"""Configuration from the environment, under the variable names existing deployments use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    min_free_disk_mb: int = Field(0, ge=0)
    cleanup_interval_ms: int = Field(300_000, ge=100)
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int | None = Field(None, ge=1, le=65535)

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

    @field_validator("worker_retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts:
                raise ValueError("give at least one delay in milliseconds, e.g. 5000,30000,120000")
            return parts
        return value

    @field_validator("worker_retry_delays")
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
