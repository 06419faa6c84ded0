"""The launcher narrows a Triton log to the failing models' errors."""
from launcher.tritonserver import model_errors

LOG = """I1128 02:17:25.799 1 server.cc:1] "starting"
E1128 02:17:25.799 1 server.cc:241] "CudaDriverHelper has not been initialized."
E1128 02:17:27.447 1 model_lifecycle.cc:642] "failed to load 'broken' version 1: Internal: RuntimeError: boom"
  continuation of the traceback
I1128 02:17:27.447 1 model_lifecycle.cc:777] "failed to load 'broken'"
| broken | 1       | UNAVAILABLE: Internal: RuntimeError: boom |
|        |         |                                           |
| fine   | 1       | READY                                     |
"""


def test_model_errors_keeps_errors_of_failed_models_only():
    text = model_errors(LOG)
    lines = text.splitlines()
    assert lines[0] == "models that failed to load: broken"
    assert any("RuntimeError: boom" in line for line in lines)
    assert "  continuation of the traceback" in lines
    assert not any("CudaDriverHelper" in line or "READY" in line or "starting" in line for line in lines)
