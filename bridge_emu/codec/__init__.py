"""Wire-format codecs for the firmware files a bridge receives.

ota_file: the ZigBee OTA upgrade file, with its generic (sub-element) body and
the GB smart-metering (GBCS) body, a strict reader for the emulated devices and
a tolerant one for inspecting files from the wild.
"""
