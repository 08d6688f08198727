"""Virtual dongles: a premises behind a coordinator dongle (ZNP or EZSP) that a
real ZigBee host stack connects to."""
