"""The ``mnist-search`` command (``app``), entered through ``main``."""


def main() -> None:
    """Mask any storage password in this process's line of the process list, then run the
    command: the mask comes first, before the few seconds of importing torch."""
    from mnist_search.redact import hide_from_process_list

    hide_from_process_list()
    from mnist_search.cli.app import main as run

    run()


__all__ = ["main"]
