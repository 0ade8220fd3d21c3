"""Keep ``__all__`` honest: it is the whole public surface, and all of it is documented."""

import inspect

import pytest

import xendiscover
import xendiscover.testing


@pytest.mark.parametrize("module", [xendiscover, xendiscover.testing])
def test_all_lists_every_public_member(module: object) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") and not inspect.ismodule(value)) or name == "__version__"
    }
    assert public == set(module.__all__)  # type: ignore[attr-defined]


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
