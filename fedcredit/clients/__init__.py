"""Partner side: the Flower ClientApp (`fedcredit.clients.app`) and the work it runs (`fedcredit.clients.partner`)."""
