# The RCU torture test as a self-test (options: torture_ticks=, torture_readers=,
# torture_writers=; out-of-range values fail it with the reason).
.include "layout.inc"
.include "selftest.inc"

SELFTEST rcu, rcu_torture, rcu_torture
