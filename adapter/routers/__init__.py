"""One router per route family; app.create_app includes them all."""
