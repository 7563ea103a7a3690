import unittest


class Fails(unittest.TestCase):
    def test_fails_on_purpose(self):
        self.assertEqual("torchkit-e2e", "a failing project test")
