"""An emulated Databricks workspace on 127.0.0.1 that the real databricks-sdk talks to unchanged."""
from .clock import SandboxClock
from .clusters import Delays
from .errors import ApiError
from .scenario import load_scenario, sample_course
from .server import SandboxServer
from .workspace import Fault, Workspace

__all__ = ["ApiError", "Delays", "Fault", "SandboxClock", "SandboxServer", "Workspace",
           "load_scenario", "sample_course"]
