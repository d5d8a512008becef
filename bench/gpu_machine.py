"""What the lent GPU machine has, what must travel to it, and a check that nothing else is imported.

The machine (see the device tool's KINDS.md, package list as read on 2026-11-17) runs Python 3.12
with torch 2.11 (CUDA 13) and transformers 5.17 and reaches no registry: what judge needs beyond its
packages travels as wheels in the ignored folder ``.whl/`` (``python bench/gpu_check.py prepare``
downloads them with `pip download` for CPython 3.12, manylinux x86-64). judge itself travels as the
working tree, imported through PYTHONPATH.

`audit_imports` sorts every top-level module imported so far by where it comes from (the standard
library, the working tree, a package of the machine, a carried wheel) and names any other: the CPU
dry run fails on such a module, because it would not import on the machine. The dry run also hides
every other installed package first (`hide_foreign_packages`), so code that would reach for one
(vLLM above all) takes the path it takes on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_DIR = ROOT / ".whl"

# The machine's own packages (distribution names), as listed for the `nvidia-h200` kind.
MACHINE_PACKAGES = frozenset("""
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax
    e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist
    fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
    imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2
    joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
    lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
    numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
    nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
    nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
    nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
    opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
    portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
    pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
    sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
    sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
    tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
    tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
    transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
    wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())

# What travels as wheels: each name==version, pinned to what this project's CPU venv runs. No
# dependency is fetched implicitly (`--no-deps`): a missing one must be named here.
#   pydantic (+ pydantic-core, annotated-types, typing-inspection): judge's records everywhere.
#   typing-extensions: pydantic 2.14 needs >= 4.16; the machine's version is not known, so carry it.
#   gguf: transformers reads GGUF files through it (the embedded models are built from a GGUF).
# Not carried, because nothing the check runs imports them (the import audit shows it):
#   openai (it needs httpx2, jiter, distro, sniffio besides): only the grade stage's judge client.
#   vllm: the official wheel is far over the 64 MiB a call may carry; the hf engine runs instead.
CARRIED_WHEELS = (
    "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
    "typing-inspection==0.4.5", "typing-extensions==4.16.0", "gguf==0.19.0",
)
CARRIED = frozenset(re.split(r"==", w)[0] for w in CARRIED_WHEELS)
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                 "manylinux2014_x86_64", "manylinux1_x86_64")


def normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def pip_download_command(dest: Path = WHEEL_DIR) -> list[str]:
    """The `pip download` that fetches the carried wheels for the machine's CPython 3.12."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp"]
    for plat in PIP_PLATFORMS:
        cmd += ["--platform", plat]
    return cmd + ["-d", str(dest), *CARRIED_WHEELS]


def download_wheels(dest: Path = WHEEL_DIR) -> list[Path]:
    """Fetch the carried wheels into ``dest`` (once: pip skips files already there); returns them.
    Wheels of other names or versions left in ``dest`` are removed: the machine installs
    ``.whl/*.whl`` and two versions of one package stop that install."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(pip_download_command(dest), check=True, stdout=subprocess.DEVNULL)
    wanted = {(normalize(n), v) for n, v in (w.split("==") for w in CARRIED_WHEELS)}
    kept = []
    for whl in sorted(dest.glob("*.whl")):
        name, version = whl.name.split("-")[:2]
        if (normalize(name), version) in wanted:
            kept.append(whl)
        else:
            whl.unlink()
    return kept


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_bytes() -> int:
    """Bytes of the working tree that travels on its own: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return sum((ROOT / p).stat().st_size for p in out.decode().split("\0")
               if p and (ROOT / p).is_file())


# --------------------------------------------------------------------------- the import audit

PROJECT = "judge"  # installed in editable mode here; it travels as the working tree


def _requirement_closure(names: frozenset[str]) -> set[str]:
    """``names`` and everything their installed versions require (extras aside). A package of the
    machine may need here what its older version there does not (huggingface_hub: httpx2)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    seen: set[str] = set()
    todo = [normalize(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalize(req.name))
    return seen


def hide_foreign_packages() -> list[str]:
    """For the CPU dry run: make every installed top-level module whose distributions are neither
    the machine's nor carried unimportable, as it is there. ``sys.modules[name] = None`` makes
    ``import name`` raise ImportError and ``importlib.util.find_spec(name)`` return None, which is
    how judge and transformers test for optional packages. Returns the names hidden."""
    from importlib import metadata

    allowed = _requirement_closure(MACHINE_PACKAGES | CARRIED) | {PROJECT}  # not judge's needs
    hidden = []
    for name, dists in metadata.packages_distributions().items():
        if name in sys.modules or name in sys.stdlib_module_names or name.startswith("__"):
            continue
        if {normalize(d) for d in dists} & allowed:
            continue
        sys.modules[name] = None  # type: ignore[assignment]
        hidden.append(name)
    return sorted(hidden)


def _module_file(module: object) -> str | None:
    file = getattr(module, "__file__", None)
    if file:
        return str(file)
    path = getattr(module, "__path__", None)  # a namespace package has a path but no file
    first = next(iter(path), None) if path is not None else None
    return str(first) if first else None


def audit_imports(modules: dict[str, object] | None = None) -> dict[str, list[str]]:
    """Every top-level module in ``modules`` (default ``sys.modules``), grouped: ``stdlib``,
    ``worktree``, ``machine`` (a package of the machine's list), ``carried`` (a carried wheel),
    ``required_here`` (required by the installed version of a machine package, e.g. httpx2 by
    huggingface_hub here; the machine's older version does without), ``other`` (none of these: it
    would not import there) and ``unknown`` (no file and no distribution: built-ins, ``__main__``)."""
    from importlib import metadata

    owners = metadata.packages_distributions()
    needed = _requirement_closure(MACHINE_PACKAGES) - MACHINE_PACKAGES  # their versions' needs
    stdlib_dirs = {Path(sysconfig.get_path(k)).resolve() for k in ("stdlib", "platstdlib")}
    groups: dict[str, list[str]] = {k: [] for k in ("stdlib", "worktree", "machine", "carried",
                                                     "required_here", "other", "unknown")}
    modules = dict(sys.modules) if modules is None else modules
    for name in sorted({m.split(".")[0] for m in modules}):
        if name in modules and modules[name] is None:
            continue  # hidden by `hide_foreign_packages`: not imported
        if name in sys.stdlib_module_names or name in sys.builtin_module_names:
            groups["stdlib"].append(name)
            continue
        file = _module_file(modules.get(name))
        where = Path(file).resolve() if file else None
        installed = where is not None and bool({"site-packages", "dist-packages"} & set(where.parts))
        if where and not installed and any(where.is_relative_to(d) for d in stdlib_dirs):
            groups["stdlib"].append(name)  # e.g. _sysconfigdata_*, not in stdlib_module_names
            continue
        if where and not installed and where.is_relative_to(ROOT):
            groups["worktree"].append(name)
            continue
        dists = {normalize(d) for d in owners.get(name, [])}
        if not dists and installed:  # an extension registered under a bare name (scipy's
            # _csparsetools, Cython's _cyutility): owned by the package folder it sits in
            site = next(i for i, part in enumerate(where.parts) if part in ("site-packages", "dist-packages"))
            top = where.parts[site + 1] if len(where.parts) > site + 1 else name
            dists = {normalize(d) for d in owners.get(top.split(".")[0], [])}
        if PROJECT in dists or name.startswith("__editable__"):  # the editable install's finder
            groups["worktree"].append(name)
        elif not dists:
            groups["unknown" if not file else "other"].append(name)
        elif dists & CARRIED:
            groups["carried"].append(f"{name} ({', '.join(sorted(dists))})")
        elif dists & MACHINE_PACKAGES:
            groups["machine"].append(name)
        elif dists & needed:  # needed by this installation's version of a machine package
            groups["required_here"].append(f"{name} ({', '.join(sorted(dists))})")
        else:
            groups["other"].append(f"{name} ({', '.join(sorted(dists))})")
    return groups
