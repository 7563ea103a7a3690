print("hello from a torchkit frontend build")
