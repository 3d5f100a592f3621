"""Which checkpoints the studio offers, and the one shared thing: a read-only cache of loaded models."""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..families import LoadedModel, ModelSummary, load_checkpoint, summarise_checkpoint
from ..figure_record import checkpoint_digest, checkpoint_version
from ..layer_names import generator_first

CheckpointEntry = ModelSummary  # a checkpoint as the studio lists it


def entry_for(path: str | Path) -> CheckpointEntry:
    """Describe one checkpoint of any family from its header or config (raises CheckpointError on a bad file)."""
    return summarise_checkpoint(path)


MODEL_FOLDER_MARKERS = ("config.json", "G.pth", "G_ema.pth")  # a folder that is one model (BigGAN-deep, BigGAN-PyTorch)
WEIGHT_SUFFIXES = (".pth", ".pt")


def candidate_paths(folder: Path) -> list[Path]:
    """Files and model folders below folder that some family may read (a model folder's own files not again)."""
    model_folders = sorted({marker.parent for name in MODEL_FOLDER_MARKERS for marker in folder.rglob(name)})
    files = sorted(folder.rglob("*.safetensors"))
    files += sorted(path for path in folder.rglob("*") if path.suffix in WEIGHT_SUFFIXES
                    and path.parent not in model_folders and path.is_file())
    return files + model_folders


def discover_checkpoints(folder: str | Path) -> list[CheckpointEntry]:
    """Every readable checkpoint below folder, by run then step; unreadable files skipped."""
    entries: dict[Path, CheckpointEntry] = {}
    for path in candidate_paths(Path(folder)):
        try:
            entry = entry_for(path)
        except CheckpointError:
            continue  # a damaged file, or one no family reads
        entries.setdefault(entry.path, entry)  # the files of one save (StudioGAN's G, G_ema, D) list once
    return sorted(entries.values(), key=lambda e: (e.run, e.step or 0))


# The run the studio opens on: of the bundled runs, the one whose attention shows most. Its G.attn0 (step
# 10,750) has beta entropy 0.63 and query dependence 0.42 bits, against 0.94 and 0.06 for twemoji32-sagan
# (checkpoints/README.md): clicked features look at distinct, far-away places instead of a broad wash.
OPENS_FIRST = "faces32-sagan"


def newest_checkpoint(entries: list[CheckpointEntry], preferred_run: str = OPENS_FIRST) -> CheckpointEntry | None:
    """The default to open: the latest step of the preferred run, else of any run with attention (any run if none has)."""
    if not entries:
        return None
    return max(entries, key=lambda e: (e.has_attention, e.run == preferred_run, e.step or 0, e.resolution == 32, e.run))


def all_layer_names(entries: list[CheckpointEntry]) -> list[str]:
    """Every attention layer name that some checkpoint has, G's first."""
    return generator_first({name for entry in entries for name in entry.layers})


def snapshot_steps(entry: CheckpointEntry, entries: list[CheckpointEntry]) -> list[int]:
    """Steps of the snapshots that sit beside this one (same run)."""
    return sorted(e.step for e in entries
                  if e.run == entry.run and e.path.parent == entry.path.parent and e.step is not None)


class ModelCache:
    """Loaded models keyed by path, least recently used dropped first; safe across sessions."""

    def __init__(self, device: torch.device, capacity: int = 12) -> None:
        self.device = device
        self.capacity = capacity
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._digests: dict[tuple, Future] = {}  # checkpoint_version -> its SHA-256, for figure records
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagan-viz-digest")
        self._lock = threading.Lock()

    def forget(self, path: str | Path) -> None:
        """Drop the model loaded from path, if any (its file is gone: an upload whose session ended)."""
        with self._lock:
            self._models.pop(str(Path(path).resolve()), None)

    def get(self, path: str | Path) -> LoadedModel:
        """The model at path, loaded once (raises CheckpointError on a bad file)."""
        key = str(Path(path).resolve())
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load_checkpoint(path, self.device)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        self.digest_soon(path)  # ready before the first figure record needs it
        return model

    def digest_soon(self, path: str | Path) -> Future:
        """The SHA-256 of a checkpoint's bytes (figure_record.checkpoint_digest), computed once per file version
        on a background thread: a 200 MB model takes ~0.2 s, which a user's first click should not wait for."""
        key = checkpoint_version(path)
        with self._lock:
            future = self._digests.get(key)
            if future is None:
                future = self._digests[key] = self._hasher.submit(checkpoint_digest, path)
        return future

    def digest(self, path: str | Path) -> str:
        """The SHA-256 of a checkpoint's bytes, waiting for it if it is still being computed."""
        return self.digest_soon(path).result()


STATISTICS_SEEDS = tuple(range(8))  # the same images for every snapshot, so steps compare fairly


class StatisticsCache:
    """metrics.attention_statistics per checkpoint, computed once per process (switching back is instant)."""

    def __init__(self, models: ModelCache, seeds: tuple[int, ...] = STATISTICS_SEEDS) -> None:
        self.models = models
        self.seeds = seeds
        self._statistics: dict[tuple[str, float], dict] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> dict[str, dict[str, float]]:
        """{layer: {distance, entropy, query_dependence, gamma}} of one checkpoint."""
        from ..sampling import attention_statistics  # deferred: the studio starts without it

        key = (str(Path(path).resolve()), Path(path).stat().st_mtime)
        with self._lock:
            if key in self._statistics:
                return self._statistics[key]
        statistics = attention_statistics(self.models.get(path), self.seeds)
        with self._lock:
            self._statistics[key] = statistics
        return statistics

    def for_run(self, entry: CheckpointEntry, entries: list[CheckpointEntry], progress=None) -> dict[int, dict]:
        """{step: statistics} for every snapshot beside entry, up to and including its step."""
        if entry.step is None:
            return {}
        snapshots = [e for e in entries
                     if e.path.parent == entry.path.parent and e.step is not None and e.step <= entry.step]
        results = {}
        for index, snapshot in enumerate(sorted(snapshots, key=lambda e: e.step)):
            if progress is not None:
                progress((index, len(snapshots)), desc=f"attention statistics: step {snapshot.step}")
            results[snapshot.step] = self.get(snapshot.path)
        return results
