"""Raspberry Pi backend: adafruit INA219/INA228 drivers, RPi.GPIO (or rpi-lgpio on a Pi 5),
pyserial UARTs. Hardware packages are imported when the backend is built, never at import."""
