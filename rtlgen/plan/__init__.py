"""Pure planners with no hardware imports: reuse schedules (:mod:`.reuse`), constant-coefficient
adder graphs (:mod:`.adders`) and io_stream schedules and FIFO depths (:mod:`.stream`). The passes,
the configuration generator and the layers all use these, so a choice is computed in one place."""
