"""Terminal rendering: the live footer and tables. Plain functions that turn results into
lines of text; the commands print them, the engine logs the progress lines."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

import optuna

from mnist_search.search.progress import StderrHandler, setup_logging
from mnist_search.search.records import TrialRecord, tally, top_trials
from mnist_search.search.storage import masked
from mnist_search.stats import pct

if TYPE_CHECKING:
    from mnist_search.frontier.run import FrontierOutcome
    from mnist_search.outputs.export import ExportOutcome
    from mnist_search.replay.summary import Finding, ReplayRow
    from mnist_search.search.final import FinalOutcome

log = logging.getLogger("mnist_search")


def epochs_word(n: int | None) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


class LiveFooter(logging.Handler):
    """On a terminal: finished trials scroll by as lines, under them a footer that stays put
    and shows how the study stands and the running trial's progress."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__()
        self.console = Console(stderr=True, highlight=False)
        self.live = Live(console=self.console, transient=True, refresh_per_second=4)
        self.status, self.step = "working…", ""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        kind, msg = getattr(record, "kind", None), self.format(record)
        if kind == "step":
            self.step = msg.strip()
        else:
            self.console.print(Text(msg))  # above the footer, kept in the scrollback
            if kind == "trial":
                self.status, self.step = getattr(record, "status", self.status), ""
        self.live.update(Text(f"── {self.status}\n   {self.step}"))


@contextlib.contextmanager
def progress(quiet: bool = False):
    """Progress for one command: a live footer on a terminal, plain lines otherwise (pipes,
    files, tests), warnings only with ``quiet``."""
    setup_logging(quiet=quiet)
    if quiet or not sys.stderr.isatty():
        yield
        return
    footer = LiveFooter()
    plain = [h for h in log.handlers if isinstance(h, StderrHandler)]
    for h in plain:
        log.removeHandler(h)
    log.addHandler(footer)
    footer.live.start()
    try:
        yield
    finally:
        footer.live.stop()
        log.removeHandler(footer)
        for h in plain:
            log.addHandler(h)


def study_summary(study: optuna.Study, url: str | None, top: int) -> list[str]:
    url = masked(url or "")  # the password stays out of the terminal and its scrollback
    t = tally(study.get_trials(deepcopy=False))
    dataset = (study.user_attrs.get("protocol") or {}).get("dataset", "mnist")
    lines = [
        "",
        f"study {study.study_name}: {t.complete} complete, {t.pruned} pruned "
        f"({t.over_budget} over budget), {t.failed} failed"
        + ("" if dataset == "mnist" else f"; data: {dataset}"),
    ]
    rows = top_trials(study, top)
    if rows:
        lines.append(
            f"{'trial':>5}  {'params':>7}  {'val acc':>7}  {'test acc':>8}  "
            f"{'seconds':>7}  architecture  [training]"
        )
        lines += [
            f"{r.number:>5}  {r.n_params or 0:>7,}  {pct(r.val_accuracy):>7}  "
            f"{pct(r.test_accuracy):>8}  {r.seconds or 0:>7.1f}  {r.architecture}  "
            f"[{recipe(r.training)}]"
            for r in rows
        ]
        lines.append("(selected on validation accuracy; test accuracy is shown, never used)")
    lines += [
        "",
        "next:",
        f"  dashboard:  mnist-search dashboard --storage {url}   (or: optuna-dashboard {url})",
        f"  report:     mnist-search report --storage {url} --study-name "
        f"{study.study_name} --out report.html",
    ]
    if rows:
        lines += [
            f"  export:     mnist-search export --storage {url} --study-name "
            f"{study.study_name} --out best-net",
            "  reproduce:  mnist-search train --spec best-net/spec.json   (after export)",
        ]
    return lines


def recipe(training: dict[str, Any] | None) -> str:
    """A trial's training settings in one short line."""
    t = training or {}
    if not t:
        return "?"
    parts = [f"{t.get('optimizer')} lr {t.get('lr', 0):.3g}", f"batch {t.get('batch_size')}"]
    if t.get("weight_decay"):
        parts.append(f"wd {t['weight_decay']:.2g}")
    parts.append(t.get("schedule", "constant"))
    if t.get("label_smoothing"):
        parts.append(f"smoothing {t['label_smoothing']:g}")
    if t.get("augment", "none") != "none":
        parts.append(f"augment {t['augment']}")
    return ", ".join(parts)


def _best_sampled_line(s: TrialRecord | None) -> str:
    if s is None:
        return "best net this search sampled: none complete (only queued nets finished)"
    return (
        f"best net this search sampled: trial {s.number}, {s.n_params or 0:,} parameters, "
        f"val {pct(s.val_accuracy)} after its search trial ({s.epochs} epoch(s))"
    )


def final_summary(out: FinalOutcome, storage: str | None = None) -> list[str]:
    if not out.candidates:
        return [f"final stage skipped: {out.skipped}"]
    length = (
        f"{out.epochs} epoch(s)"
        if out.epochs is not None
        else "each for the epochs its share of the time allows"
    )
    lines = [
        "",
        f"final: {len(out.candidates)} candidate(s) retrained from scratch, "
        f"{length}, seeds 0-{out.seeds - 1}"
        + (f", each with augmentation {out.augment}" if out.augment else "")
        + "; chosen on mean validation accuracy",
        f"{'trial':>5}  {'params':>7}  {'val mean ± std':>15}  {'test mean ± std':>15}  "
        "architecture",
    ]
    for c in out.candidates:
        v, t = c.val_stat, c.test_stat
        lines.append(
            f"{c.source_trial:>5}  {c.n_params:>7,}  {v.mean:>8.2f} ± {v.std:4.2f}  "
            f"{t.mean:>8.2f} ± {t.std:4.2f}  {c.architecture}  "
            f"({len(c.seeds)} of {out.seeds} seeds, {epochs_word(c.epochs)}; {c.origin})"
        )
    best = out.chosen
    if best is not None:
        t = best.test_stat
        lines += [
            "",
            f"chosen: trial {best.source_trial}, {best.n_params:,} parameters, test "
            f"{t.mean:.2f} ± {t.std:.2f}% over {len(best.seeds)} seeds "
            f"({epochs_word(best.epochs or out.epochs)}): {best.origin}",
        ]
    elif out.skipped:
        lines += ["", f"nothing chosen: {out.skipped}"]
    lines.append(_best_sampled_line(out.best_sampled))
    if best is not None and out.best_spec is not None:
        lines.append(
            f"written to {out.best_spec}; reproduce with:  mnist-search train --spec "
            f"{out.best_spec} --seeds {out.seeds}"
        )
        if storage is not None and out.study_name is not None:
            # The search study's best is a short-trained candidate; the retrained net is here.
            lines.append(
                f"export the retrained net:  mnist-search export --storage "
                f"{masked(storage)} "
                f"--study-name {out.study_name} --out best-net"
            )
    return lines


def export_lines(done: ExportOutcome) -> list[str]:
    lines = [f"wrote {f}" for f in done.files]
    for name, acc in done.test_accuracy.items():
        lines.append(
            f"{name}: test accuracy {acc:.2f}% on the raw uint8 test images (trial "
            f"{done.record.number} recorded {pct(done.record.test_accuracy)})"
        )
    if done.test_accuracy and not done.matches:
        lines.append("MISMATCH: an exported model does not reproduce the recorded accuracy")
    if done.files:
        lines += [
            "",
            "input: N×1×28×28 uint8 pixels 0..255 (normalised inside); output: "
            f"N×{done.classes} log-probabilities. Load with torch.export.load(...).module() or "
            "onnxruntime.InferenceSession(...).",
        ]
    return lines


def fields_table(out: dict[str, Any]) -> list[str]:
    """A training's result, one field a line."""
    lines = []
    for key, value in out.items():
        if key == "runs":
            continue
        if key.endswith(("accuracy", "mean", "std")):
            shown = pct(value)
        elif isinstance(value, dict):  # e.g. speed: amp off, channels_last off, ...
            shown = ", ".join(
                f"{k} {'on' if v is True else 'off' if v is False else v}" for k, v in value.items()
            )
        else:
            shown = f"{value:,}" if isinstance(value, int) else value
        lines.append(f"{key:>18}: {shown}")
    return lines


def replay_table(rows: list[ReplayRow], found: list[Finding]) -> list[str]:
    def both(doc, measured) -> str:
        return f"{pct(doc):>7} | {str(measured) + '%' if measured else '-':<15}"

    lines = [
        "",
        f"{'exp':>3}  {'params: documented → true':<30}  "
        f"{'train acc: doc | measured':<25}  {'test acc: doc | measured':<25}  "
        f"{'s/epoch':>7}  {'efficiency: doc → true':>22}",
    ]
    for r in rows:
        params = f"{r.documented_params_text} → {r.true_params:,}"
        if r.count_is_wrong:
            params += " (!)"
        eff = (
            f"{r.documented_efficiency:.2f} → {r.efficiency:.2f}"
            if r.documented_efficiency
            else "-"
        )
        spe = r.seconds_per_epoch
        lines.append(
            f"{r.experiment:>3}  {params:<30}  "
            f"{both(r.documented_train_accuracy, r.train_accuracy)}  "
            f"{both(r.documented_test_accuracy, r.test_accuracy)}  "
            f"{spe.mean if spe else 0:>7.1f}  {eff:>22}"
        )
    n = {len(r.seeds) for r in rows}
    lines.append(
        f"(measured: mean ± std over {'/'.join(map(str, sorted(n)))} seed(s); "
        "efficiency = test accuracy / (params/1000), 'true' with the measured accuracy "
        "and true count)"
    )
    lines += [f"(!) Exp{r.experiment}: {r.note}" for r in rows if r.count_is_wrong]
    lines += ["", "findings of the write-up:"]
    for f in found:
        verdict = {True: "holds", False: "does not hold", None: "not checked"}[f.holds]
        lines.append(f"  ({f.id}) {f.claim}: {verdict.upper()} — {f.detail}")
    return lines


def experiments_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'id':>2}  {'batch':>5}  {'doc params':>16}  {'true params':>11}  "
        f"{'doc train':>9}  {'doc test':>8}  architecture"
    ]
    for r in rows:
        mark = "  (!)" if r["count_is_wrong"] else ""
        lines.append(
            f"{r['id']:>2}  {r['batch_size']:>5}  {r['documented_params_text']:>16}  "
            f"{r['true_params']:>11,}  {pct(r['documented_train_accuracy']):>9}  "
            f"{pct(r['documented_test_accuracy']):>8}  {r['architecture']}{mark}"
        )
    lines += [f"(!) Exp{r['id']}: {r['note']}" for r in rows if r["count_is_wrong"]]
    return lines


def frontier_summary(result: FrontierOutcome) -> list[str]:
    """One line per budget: its chosen net, or why none was chosen; then the target's line."""
    from mnist_search.frontier.outputs import target_line

    lines = [
        f"{r.budget:>7,}: {r.n_params:,} parameters, {epochs_word(r.epochs)}, test "
        f"{r.test_mean:.2f} ± {r.test_std:.2f}% (val {r.val_mean:.2f}); {r.origin}"
        for r in result.rows
    ]
    lines += [f"{b:>7,}: nothing chosen: {why}" for b, why in sorted(result.missing.items())]
    if result.target is not None:
        lines.append(target_line(result.target, markdown=False))
    return lines


def ship_lines(done: Any) -> list[str]:
    """What ``frontier --ship`` wrote and removed."""
    return [f"shipped: {p}" for p in done.written] + [f"removed: {p}" for p in done.removed]
