"""Embedded services: real engines run as local processes under one state folder.

``lambdarec services up|down|status|logs`` drives :class:`~lambdarec.runtime.supervisor.Supervisor`;
each engine is a :class:`~lambdarec.runtime.service.ManagedService`.
"""
