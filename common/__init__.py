"""Small pieces every pipeline and CLI shares: device choice, atomic writes, user errors."""
