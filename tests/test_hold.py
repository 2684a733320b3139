"""tools/hold.py's boot_held: the guest it yields is paused, so what the host reads is one
moment; a kernel that ends or hangs before holding raises HoldError with how it ended."""

from __future__ import annotations

import time

import pytest

from kernel.abi import HOLD_PASS
from kernel.events import PERCPU
from tools.hold import HoldError, boot_held
from tools.qemu import Outcome

pytestmark = pytest.mark.qemu
EVENT_SEQ = PERCPU.offsets()["event_seq"]


def test_the_held_guest_is_paused_and_stays_still(kernel_image, kernel_symbols):
    with boot_held(kernel_image, "selftest=int3", 60, symbols=kernel_symbols) as h:
        assert h.passed and h.code == HOLD_PASS, h.console
        assert h.vm.status() == "paused"
        first = h.read_u64("percpu", EVENT_SEQ)
        h.vm.inject_nmi()  # an NMI logs records, were the guest running
        time.sleep(0.3)
        assert h.read_u64("percpu", EVENT_SEQ) == first
        assert h.state().percpu["event_seq"] == first
        # The check can fail: let the held kernel run and the pending NMI moves the log on.
        h.vm.cont()
        deadline = time.monotonic() + 10
        while h.read_u64("percpu", EVENT_SEQ) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.read_u64("percpu", EVENT_SEQ) > first


@pytest.mark.parametrize(
    ("append", "outcome", "message"),
    [("crash=oops", Outcome.PANIC, "the kernel ended before HOLD: OOPS: unexpected exception"),
     ("crash=hang", Outcome.TIMEOUT, "the kernel did not reach HOLD within 1.5 s")],
)  # fmt: skip
@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_a_kernel_that_does_not_hold(kernel_image, append, outcome, message):
    with pytest.raises(HoldError) as info, boot_held(kernel_image, append, 1.5):
        pytest.fail("the kernel held")
    assert info.value.outcome is outcome and message in str(info.value)
    assert "condrcu:" in info.value.console
