"""The model layer: pure Python, numpy and (lazily) torch. Never imports Qt."""
