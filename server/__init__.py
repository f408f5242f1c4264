"""sitrep server: the Litestar application, its repositories, and the tasks its lifespan owns."""
