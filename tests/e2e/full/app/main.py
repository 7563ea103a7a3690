import importlib.metadata as m

print("packaging", m.version("packaging"), "six", m.version("six"))
