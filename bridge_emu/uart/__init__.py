"""Sans-I/O machines of the dongles' UART protocols: the ASH link layer (and,
above it, the NCP and host roles of MT and EZSP). Bytes and time in; bytes,
events and deadlines out. Transports are bridge_emu.net.serial_link."""
