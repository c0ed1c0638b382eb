"""Configuration from the environment, under the variable names existing deployments use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
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
