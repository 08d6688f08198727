"""ZigBee OTA Upgrade cluster roles: the server (the Communications Hub) and the client (a bridge)."""
