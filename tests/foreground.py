"""For a child process the tests start and then signal: before exec, hear Ctrl-C and a closed
terminal as a terminal's foreground job does, even where pytest itself was started ignoring them
(a background job ignores SIGINT, nohup SIGHUP), which the child would otherwise inherit."""

import signal


def hear_stops() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
