"""Generated protobuf and gRPC stubs of the callsure.v1 API.

The ``*_pb2.py`` modules are generated from the ``.proto`` files beside
this one when the package is built; they are not kept in the repository.
"""
