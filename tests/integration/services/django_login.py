#!/usr/bin/env python3
"""An uninstrumented Django login service for the login chain of issue 13:
nginx -> gunicorn -> Django -> PostgreSQL.

Runs with Debian's /usr/bin/python3 (3.11) and its python3-django (3.2),
gunicorn (20.1) and python3-psycopg2 packages (scripts/setup.sh --tests);
Django's own PostgreSQL backend (psycopg2, simple query protocol) through
its ORM. Knows nothing about tracing.

POST /login (form: username, password):
  422  a field is missing or empty (no database query)
  400  no such account, or a wrong password (one SELECT)
  200  the password is right (the SELECT, then an UPDATE of last_login)

gunicorn runs one gthread worker (4 threads); Django connects per request
(CONN_MAX_AGE=0, its default), so every database connection is seen from
its first byte. The accounts table is the test's (see test_django_login.py):
accounts(id, username, password, last_login), password a Django hash.

--headers-log FILE: one JSON line per request, the traceparent it arrived with.

Prints "listening" (gunicorn's post_worker_init) once the worker serves.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def application():
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test-only",
        MIDDLEWARE=[], INSTALLED_APPS=[],
        # A fast hasher: PBKDF2's 260 000 rounds would take most of a
        # second per login on a busy test machine.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        # The server reports TimeZone=UTC at startup (options below), so
        # Django has no reason to send SET TIME ZONE on each connection.
        USE_TZ=True, TIME_ZONE="UTC",
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["LOGIN_PG_HOST"], "PORT": os.environ["LOGIN_PG_PORT"],
            "NAME": os.environ["LOGIN_PG_DB"], "USER": "postgres",
            "OPTIONS": {"sslmode": "disable", "options": "-c TimeZone=UTC"},
        }})
    django.setup()
    global urlpatterns
    urlpatterns = login_urls()
    from django.core.wsgi import get_wsgi_application
    return get_wsgi_application()


def login_urls():
    from django.contrib.auth.hashers import check_password
    from django.db import models
    from django.http import JsonResponse
    from django.urls import path
    from django.utils import timezone

    class Account(models.Model):
        username = models.CharField(max_length=64, unique=True)
        password = models.CharField(max_length=128)
        last_login = models.DateTimeField(null=True)

        class Meta:
            app_label = "login"
            db_table = "accounts"
            managed = False

    def login(request):
        log_traceparent(request)
        if request.method != "POST":
            return JsonResponse({"error": "POST only"}, status=405)
        username = request.POST.get("username", "")
        password = request.POST.get("password", "")
        if not username or not password:
            return JsonResponse({"error": "username and password are required"}, status=422)
        account = Account.objects.filter(username=username).first()
        if account is None or not check_password(password, account.password):
            return JsonResponse({"error": "wrong username or password"}, status=400)
        Account.objects.filter(pk=account.pk).update(last_login=timezone.now())
        return JsonResponse({"ok": True, "id": account.pk}, status=200)

    return [path("login", login)]


def log_traceparent(request):
    """What each request arrived with, for the test to compare with the spans."""
    log = os.environ.get("LOGIN_HEADERS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"traceparent": request.META.get("HTTP_TRACEPARENT")}) + "\n")


urlpatterns = []


def make_password(password):
    """The hash the accounts table stores (for the test's INSERT)."""
    from django.conf import settings
    settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    from django.contrib.auth.hashers import make_password as hash_it
    return hash_it(password)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--pg-host")
    ap.add_argument("--pg-port", type=int)
    ap.add_argument("--pg-db", default="shop")
    ap.add_argument("--headers-log", help="append each request's traceparent here (JSON lines)")
    ap.add_argument("--hash", metavar="PASSWORD", help="print the hash of PASSWORD and exit")
    opts = ap.parse_args()
    if opts.hash is not None:
        print(make_password(opts.hash))
        return
    env = dict(os.environ, LOGIN_PG_HOST=opts.pg_host, LOGIN_PG_PORT=str(opts.pg_port),
               LOGIN_PG_DB=opts.pg_db, LOGIN_HEADERS_LOG=opts.headers_log or "",
               PYTHONPATH=HERE)
    # exec: the caller's pid is gunicorn's master; its gthread worker is its child.
    os.execve(sys.executable, [sys.executable, "-m", "gunicorn",
                               "-c", os.path.join(HERE, "py_frameworks_gunicorn.py"),
                               "--worker-class", "gthread", "--threads", "4", "--workers", "1",
                               "--bind", f"{opts.host}:{opts.port}", "--log-level", "warning",
                               "django_login:application()"], env)


if __name__ == "__main__":
    main()
