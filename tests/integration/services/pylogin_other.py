"""pylogin.py's neighbour: a function with a probed name in a file that is
not probed (its calls must not become spans)."""
import time


def check_password(user):
    time.sleep(0.002)
    return bool(user)
