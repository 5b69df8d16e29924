"""The real-time side: the Socket.IO server and the tasks that feed it."""
