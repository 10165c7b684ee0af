"""The console's one way of writing a moment, Django admin's pages included: 24-hour clock, and the
time zone (``TIME_ZONE``, from ``TZ``) always said, as every console page says it."""
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
