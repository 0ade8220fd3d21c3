"""Keep ``__all__`` honest: it is the whole public surface, and all of it is documented."""

import inspect

import pytest

import xendiscover
import xendiscover.testing


@pytest.mark.parametrize("module", [xendiscover, xendiscover.testing])
def test_all_lists_every_public_member(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        getattr(module, name)  # loads lazily exported names, and fails on a stale one
    public = {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") and not inspect.ismodule(value)) or name == "__version__"
    }
    assert public == set(module.__all__)  # type: ignore[attr-defined]
    assert set(dir(module)) >= public


def test_the_lazy_exports_are_exactly_all() -> None:
    exports = xendiscover._EXPORTS
    assert set(exports) | {"__version__"} == set(xendiscover.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        xendiscover.nope  # noqa: B018


def test_importing_the_package_loads_no_heavy_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, xendiscover; "
        "print(sorted(m for m in ('cryptography', 'aiodns', 'typer', 'rich', 'ssl') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", [xendiscover, xendiscover.testing])
def test_every_exported_class_and_function_is_documented(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
            for attr, member in vars(value).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("xendiscover").joinpath("py.typed").is_file()
