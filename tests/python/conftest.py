# pytest setup for the vkssm Python module (scripts/setup.sh test runs it after ctest):
#   PYTHONPATH=build/python python3 -m pytest -q tests/python
# Like the C++ tests (tests/test_main.cpp) every test runs under the Khronos validation layer and
# fails on any validation message. VKSSM_BUILD_DIR names the build folder (default: build).
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("VKSSM_BUILD_DIR", ROOT / "build")).resolve()

os.environ.setdefault("VKSSM_VALIDATION", "1")
os.environ.setdefault("VKSSM_CACHE_DIR", str(BUILD / "pytest-pipeline-cache"))
if str(BUILD / "python") not in sys.path:
    sys.path.insert(0, str(BUILD / "python"))

import vkssm  # noqa: E402


@pytest.fixture(autouse=True)
def no_validation_messages():
    before = vkssm.validation_message_count()
    yield
    after = vkssm.validation_message_count()
    assert after == before, f"{after - before} Vulkan validation message(s)"


@pytest.fixture(scope="session")
def cli():
    path = BUILD / "bin" / "vkssm"
    if not path.exists():
        pytest.skip(f"{path} is not built")
    return str(path)
