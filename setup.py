# Builds the `vkssm` extension with CMake for `pip install --no-build-isolation .` (pyproject.toml).
# The CMake build folder is build-pip/ (VKSSM_PIP_BUILD_DIR overrides it, e.g. to reuse build/).
import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = pathlib.Path(os.environ.get("VKSSM_PIP_BUILD_DIR", ROOT / "build-pip")).resolve()
        configure = ["cmake", "-S", str(ROOT), "-B", str(build), f"-DPython_EXECUTABLE={sys.executable}"]
        if not (build / "CMakeCache.txt").exists():  # a new folder: only what the module needs
            configure += ["-DCMAKE_BUILD_TYPE=Release", "-DVKSSM_BUILD_TESTS=OFF"]
            if shutil.which("ninja"):
                configure += ["-G", "Ninja"]
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "vkssm_python", "--parallel",
                        str(os.cpu_count() or 1)], check=True)
        suffix = ".so" if os.name != "nt" else ".pyd"
        built = [p for p in (build / "python").glob("vkssm*" + suffix)
                 if p.name.endswith(self.get_ext_filename("vkssm")[len("vkssm"):])]
        if not built:
            raise RuntimeError(f"the CMake build left no module for {sys.executable} in {build / 'python'}")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)
        shutil.copyfile(ROOT / "python" / "vkssm.pyi", dest.parent / "vkssm.pyi")


# setuptools' own scratch goes to build-pip/ too, not to build/ (the README's CMake build folder).
SCRATCH = ROOT / "build-pip"
SCRATCH.mkdir(exist_ok=True)
setup(ext_modules=[Extension("vkssm", sources=[])], cmdclass={"build_ext": CMakeBuild}, packages=[], py_modules=[],
      options={"build": {"build_base": str(SCRATCH / "setuptools")}, "egg_info": {"egg_base": str(SCRATCH)}})
