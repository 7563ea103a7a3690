"""Runs in the built image during `torchkit build` ([verify] run)."""
import os
import unittest


class ImageTest(unittest.TestCase):
    def test_torch_is_the_resolved_release(self):
        import torch

        self.assertTrue(torch.__version__.startswith("2.8.0"), torch.__version__)

    def test_app_was_copied_and_tests_were_not(self):
        self.assertTrue(os.path.exists("/workspace/app/main.py"))
        # The context is mounted over the workdir for the tests only.
        self.assertTrue(os.path.exists("/workspace/tests/test_image.py"))


if __name__ == "__main__":
    unittest.main()
