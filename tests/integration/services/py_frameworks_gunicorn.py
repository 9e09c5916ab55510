# gunicorn configuration of py_frameworks.py's Django service: says
# "listening" on the master's stdout once the worker can take requests.
def post_worker_init(worker):
    print("listening", flush=True)
