"""Partner side: the Flower ClientApp (`clients.app`) and the work it runs (`clients.partner`)."""
