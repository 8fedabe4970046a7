"""Materials lending: catalogue, stock, requests, bookings, handover and return (issue 3)."""
