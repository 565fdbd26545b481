"""The data: every benchmark by name and its loader (Hub or local copy), class-incremental task splits, the pixel cache, the offline shapes world. Imports nothing from the rest of the package."""
