"""Finding the program in an LLM response."""
from __future__ import annotations

import re

_FENCE_OPEN = re.compile(r"```[ \t]*(python|py|python3)?[ \t]*\n", re.IGNORECASE)


def has_fence(text: str) -> bool:
    """Whether ``text`` opens a code fence (```python, ```py, plain ```) anywhere."""
    return _FENCE_OPEN.search(text) is not None


def extract_code(text: str) -> str | None:
    """Return the code in ``text``, or None when there is none.

    - The first fenced ```python block wins; failing that, the first plain ``` block.
    - A fence that is opened but never closed (a generation cut at the token limit) gives None:
      running half a program only produces a misleading SYNTAX_ERROR.
    - Text without any fence is taken as code as it is.
    """
    opens = list(_FENCE_OPEN.finditer(text))
    if not opens:
        return text if text.strip() else None
    python_opens = [m for m in opens if m.group(1)]
    first = python_opens[0] if python_opens else opens[0]
    end = text.find("```", first.end())
    if end < 0:
        return None
    code = text[first.end():end].strip("\n")
    return code if code.strip() else None
