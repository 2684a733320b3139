"""The counts the robustness self-tests and their host tests (tests/test_robust.py) share.

Part of kernel/abi.py's constants (so of the generated `layout.inc` and of `abi.SHARED`); the
host may read them from here. Imports nothing.
"""

from __future__ import annotations

# robust_write_race: user_letters_x and user_letters_y (kernel/user/programs.s) each write
# LETTER_LINES lines of LETTER_LINE_LEN bytes: LETTER_LINE_LEN - 1 letters and a newline.
LETTER_LINES = 150
LETTER_LINE_LEN = 200

# robust_printk_race (kernel/selftest/robust.s): two threads each printk PRINTK_RACE_LINES
# lines of PRINTK_RACE_WIDTH copies of one letter.
PRINTK_RACE_LINES = 500
PRINTK_RACE_WIDTH = 199

CONSTANTS: dict[str, int] = {
    "LETTER_LINES": LETTER_LINES,
    "LETTER_LINE_LEN": LETTER_LINE_LEN,
    "PRINTK_RACE_LINES": PRINTK_RACE_LINES,
    "PRINTK_RACE_WIDTH": PRINTK_RACE_WIDTH,
}
