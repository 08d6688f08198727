"""Built-in premises descriptions (TOML), one per Alt HAN configuration."""
