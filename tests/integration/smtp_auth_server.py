#!/usr/bin/python3
# A real SMTP server (aiosmtpd, Debian package python3-aiosmtpd) that requires AUTH, for the
# email notifier's tests: `smtp_auth_server.py PORT USER PASSWORD`. It accepts AUTH PLAIN and
# LOGIN without TLS (auth_require_tls=False) for exactly USER/PASSWORD, refuses MAIL before a
# successful AUTH (auth_required=True) and prints each received message like aiosmtpd's
# Debugging handler ("---------- MESSAGE FOLLOWS ----------" ... "------------ END MESSAGE
# ------------"), plus an "AUTH OK <mechanism> <user>" line per successful login. Runs until
# killed.
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Debugging
from aiosmtpd.smtp import AuthResult, LoginPassword

port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and \
        auth_data.password == password
    if ok:
        print("AUTH OK", mechanism, auth_data.login.decode(), flush=True)
    # handled=False: aiosmtpd then answers 535 itself (with the default it sends nothing).
    return AuthResult(success=ok, handled=False)


controller = Controller(Debugging(sys.stdout), hostname="127.0.0.1", port=port,
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=False)
controller.start()
print("listening", port, flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
