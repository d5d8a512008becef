"""judge: does the compressed model still behave like the baseline?"""

__version__ = "0.1.0"
