"""The Python examples in the docs run as written (each test_* function they define)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _examples(page: str) -> list[str]:
    return _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("index", range(len(_examples("testing.md"))))
async def test_testing_page_examples_pass(index: int) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_examples("testing.md")[index], f"testing.md[{index}]", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests, "every example on the testing page is a test"
    for test in tests:
        assert inspect.iscoroutinefunction(test)
        await test()
