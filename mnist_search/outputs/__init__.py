"""What a study is shown and shipped as: the HTML report (``report``, from ``report_data``), the
exported model (``export``) and optuna-dashboard with the weights attached (``dashboard``)."""

from mnist_search.lazy import exports

_API = {
    "report_data": "report_data",
    "report_study": "report",
    "export_study_trial": "export",
    "serve": "dashboard",
}
__all__ = sorted(_API)
__getattr__ = exports(__name__, _API)
