"""Build callsure: the Cython call-progress kernels and the gRPC stubs.

The source folders stay at the top of the repository and are installed
under the ``callsure`` package through ``package_dir``, because bare names
such as ``proto`` and ``engine`` collide with other distributions
(proto-plus already owns the import name ``proto``).

Set ``CALLSURE_CYTHON_DEBUG=1`` to build the kernels with bounds and
wrap-around checks, for debugging a crash in the DSP code.
"""

import os
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE = PROTO_ROOT / "callsure" / "v1"


def generate_grpc_stubs():
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` beside the protos."""
    from grpc_tools import protoc  # build requirement, see pyproject.toml

    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in PROTO_PACKAGE.glob("*.proto")
    )
    if not protos:
        return
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={PROTO_ROOT}",
        f"--pyi_out={PROTO_ROOT}",
        f"--grpc_python_out={PROTO_ROOT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(protos)}")


class BuildPyWithStubs(build_py):
    def run(self):
        generate_grpc_stubs()
        super().run()


class BuildExtWithStubs(build_ext):
    # Editable installs and `setup.py build_ext --inplace` skip build_py,
    # so the stubs are generated here too.
    def run(self):
        generate_grpc_stubs()
        super().run()


DEBUG = os.environ.get("CALLSURE_CYTHON_DEBUG") == "1"
COMPILER_DIRECTIVES = {
    "language_level": 3,
    # Kernels index inside lengths the facade has already checked.
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # Integer division follows C; kernels never divide by a negative.
    "cdivision": not DEBUG,
    "embedsignature": True,
}

extensions = [
    Extension(
        f"callsure.dsp.{Path(source).stem}",
        [source],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for source in sorted(glob("dsp/*.pyx"))
]

setup(
    name="callsure",
    version="0.1.0",
    description="Predictive callback engine for contact centers",
    license="GPL-2.0-or-later",
    python_requires=">=3.11",
    package_dir={
        "callsure.engine": "engine",
        "callsure.dsp": "dsp",
        "callsure.actors": "actors",
        "callsure.v1": "proto/callsure/v1",
    },
    packages=["callsure.v1"]
    + [
        f"callsure.{folder}{'.' + sub if sub else ''}"
        for folder in ("engine", "dsp", "actors")
        for sub in ["", *find_packages(where=folder)]
    ],
    package_data={
        "callsure.engine": ["*.toml", "data/*"],
        "callsure.dsp": ["*.pyx", "*.pxd", "*.pxi", "*.pyi"],
        "callsure.actors": ["data/*", "data/*/*"],
        "callsure.v1": ["*.proto", "*.pyi"],
    },
    ext_modules=cythonize(
        extensions,
        compiler_directives=COMPILER_DIRECTIVES,
        annotate=DEBUG,
    ),
    cmdclass={"build_py": BuildPyWithStubs, "build_ext": BuildExtWithStubs},
    install_requires=[
        "numpy>=2.0",
        "Cython>=3.0",
        "ray>=2.40",
        "grpcio>=1.66",
        "grpcio-health-checking>=1.66",
        "grpcio-reflection>=1.66",
        "googleapis-common-protos>=1.60",
        "protobuf>=5.27",
        "msgpack>=1.0",
        "pjsua2-python==2.15.1.post1",
        "click>=8.1",
        "scipy>=1.13",
        "holidays>=0.50",
        "PyYAML>=6.0",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "grpcio-tools>=1.66",
            "webrtcvad-wheels>=2.0.14",
        ],
    },
    entry_points={"console_scripts": ["callsure = callsure.actors.cli:main"]},
)
