"""Training without Optuna: the loop and its settings (``loop``), how candidates are trained and
judged (``protocol``), where and how fast (``settings``), K candidates fused (``fused``), and a
spec file or documented experiment retrained over seeds (``retrain``)."""

from mnist_search.lazy import exports

_API = {
    "Diverged": "loop",
    "SettingsError": "loop",
    "Speed": "loop",
    "TrainConfig": "loop",
    "train": "loop",
    "Protocol": "protocol",
    "RunSettings": "settings",
    "train_fused": "fused",
    "SpecFile": "retrain",
    "retrain": "retrain",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
