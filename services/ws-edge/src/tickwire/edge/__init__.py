"""tickwire ws-edge: terminates client WebSockets and fans ticks out to them."""
