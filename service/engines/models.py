"""Whisper models for the `local` engine: which one a run may use, where it lives, getting it.

A model is a size name (`base`, `tiny.en`, `large-v3`, `turbo`), a Hugging Face repo id, or a
directory holding a CTranslate2 Whisper model. Names are downloaded with faster-whisper's own
`download_model` into WHISPER_MODELS_DIR the first time they are needed; a file lock beside the
model makes several workers on one machine download it once, and a `.complete` marker written
after the last byte tells a finished download from one interrupted half way.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from service.config import Settings
from service.errors import ModelNotAllowed, ModelUnavailable

COMPLETE_MARKER = ".complete"
MULTILINGUAL_VOCABULARY = 51_865
PROGRESS_INTERVAL_S = 0.5

Progress = Callable[[int, int | None], None]
"""Called with (bytes downloaded so far, total bytes or None when the hub did not say)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    path: Path | None
    size_bytes: int


def model_for_run(settings: Settings, requested: str | None) -> str:
    """The model a run will use: the default, or one the operator allowed by name."""
    if not requested or requested == settings.whisper_model:
        return settings.whisper_model
    if requested in settings.whisper_models_allowed:
        return requested
    allowed = ", ".join([settings.whisper_model, *settings.whisper_models_allowed])
    raise ModelNotAllowed(
        f"The local engine does not offer the model {requested!r} here. Allowed: {allowed}."
    )


def english_only(settings: Settings, name: str) -> bool:
    """Whether the model knows English only: `*.en` names, or a vocabulary without languages."""
    path = find_model(settings, name)
    if path is not None and (path / "vocabulary.txt").is_file():
        lines = (path / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
        return len(lines) < MULTILINGUAL_VOCABULARY
    return name.rstrip("/").endswith(".en")


def local_dir(settings: Settings, name: str) -> Path:
    """Where a named model is kept under WHISPER_MODELS_DIR."""
    return settings.models_dir / re.sub(r"[^A-Za-z0-9._-]+", "--", name)


def _is_directory_name(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().is_dir()


def find_model(settings: Settings, name: str) -> Path | None:
    """The model's directory when it is on this machine, else None."""
    if _is_directory_name(name):
        path = Path(name).expanduser()
        return path if (path / "model.bin").is_file() else None
    path = local_dir(settings, name)
    return path if (path / COMPLETE_MARKER).is_file() else None


def require_model(settings: Settings, name: str) -> Path:
    """The model's directory, fetching it first if needed; `ModelUnavailable` when it cannot be
    had. Blocking: call it off the event loop."""
    return find_model(settings, name) or fetch_model(settings, name)


def fetch_model(settings: Settings, name: str, progress: Progress | None = None) -> Path:
    """Download a named model once per machine, whatever number of workers ask at the same
    time; the others wait on the lock and find it there."""
    if _is_directory_name(name):
        raise ModelUnavailable(
            f"The model directory {name!r} holds no CTranslate2 Whisper model (model.bin). "
            "Point WHISPER_MODEL at a directory with model.bin, config.json and tokenizer.json."
        )
    target = local_dir(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / COMPLETE_MARKER).is_file():
            return target
        if _offline():
            raise ModelUnavailable(
                f"The model {name!r} is not in {settings.models_dir} and HF_HUB_OFFLINE is set. "
                f"Run `tapeline models pull {name}` where there is network access and copy "
                "the models directory here, or point WHISPER_MODEL at a model directory."
            )
        _download(name, target, progress)
        (target / COMPLETE_MARKER).write_text(name)
        return target


def _download(name: str, target: Path, progress: Progress | None) -> None:
    from faster_whisper.utils import download_model

    total = _total_bytes(name) if progress is not None else None
    done = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(target=_watch, args=(target, total, progress, done), daemon=True)
        watcher.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            download_model(name, output_dir=str(target))
    except ValueError as exc:
        raise ModelUnavailable(f"There is no Whisper model called {name!r}: {exc}") from exc
    except Exception as exc:
        raise ModelUnavailable(
            f"The model {name!r} could not be downloaded ({type(exc).__name__}: {exc}). "
            f"Run `tapeline models pull {name}` where there is network access, or point "
            "WHISPER_MODEL at a directory holding the model."
        ) from exc
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
    if progress is not None:
        size = total or directory_bytes(target)
        progress(size, size)


def _watch(target: Path, total: int | None, progress: Progress, done: threading.Event) -> None:
    while not done.wait(PROGRESS_INTERVAL_S):
        got = directory_bytes(target)
        progress(min(got, total) if total else got, total)


def _total_bytes(name: str) -> int | None:
    """The size of the files faster-whisper will fetch, as the hub lists them; None if unknown."""
    try:
        import huggingface_hub
        from faster_whisper.utils import _MODELS

        repo_id = name if "/" in name else _MODELS.get(name, name)
        info = huggingface_hub.HfApi().model_info(repo_id, files_metadata=True)
        wanted = re.compile(
            r"^(config\.json|preprocessor_config\.json|model\.bin|tokenizer\.json|vocabulary\..*)$"
        )
        sizes = [s.size or 0 for s in info.siblings or [] if wanted.match(s.rfilename)]
        return sum(sizes) or None
    except Exception:
        return None


def directory_bytes(path: Path) -> int:
    """Bytes under `path`, partial downloads included (how far a download has got)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            try:
                total += (Path(root) / file).stat().st_size
            except OSError:
                continue
    return total


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def list_models(settings: Settings) -> list[ModelInfo]:
    """The models on this machine: the configured default, and what WHISPER_MODELS_DIR holds."""
    found: dict[str, ModelInfo] = {}
    default = find_model(settings, settings.whisper_model)
    found[settings.whisper_model] = ModelInfo(
        settings.whisper_model, default, directory_bytes(default) if default else 0
    )
    if settings.models_dir.is_dir():
        for marker in sorted(settings.models_dir.glob(f"*/{COMPLETE_MARKER}")):
            name = marker.read_text().strip() or marker.parent.name
            found.setdefault(name, ModelInfo(name, marker.parent, directory_bytes(marker.parent)))
    return list(found.values())
