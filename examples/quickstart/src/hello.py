"""Prints what the image was built with."""
import importlib.metadata as md
import os

for dist in ("packaging", "tomli", "six"):
    print(f"{dist} {md.version(dist)}")
print("user", os.getuid(), "cwd", os.getcwd())
