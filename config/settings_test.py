"""Settings for the test suite: the real settings, plus fast password hashing and in-memory
e-mail (unless a test's subprocess asks for files through EMAIL_URL)."""

import os

# Long enough for the production rules (config/secret_key.py), and used by nothing but tests.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-never-used-outside-the-test-suite-0123456789")
# With REDIS_URL unset, tests/conftest.py starts the session's own Redis, whatever the database.
os.environ.setdefault("EMBEDDED_REDIS", "true")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if "EMAIL_URL" not in os.environ:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The suite runs without collectstatic: whitenoise finds files per request (through the
# finders) instead of indexing a STATIC_ROOT that does not exist.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# The test client and the browser tests speak plain http to 127.0.0.1. tests/config proves
# the production defaults in processes started with production settings.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
