"""The host as a real process for tests: see durablehost.process (public API)."""

from durablehost.process import HostProcess, HostStartError, run_host_process

__all__ = ["HostProcess", "HostStartError", "run_host_process"]
