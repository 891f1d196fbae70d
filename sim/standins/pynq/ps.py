"""Stand-in of ``pynq.ps``: the PL clock a driver may read (set by ``pynq.attach``)."""


class Clocks:
    fclk0_mhz = 100.0
    fclk1_mhz = 0.0
    fclk2_mhz = 0.0
    fclk3_mhz = 0.0
