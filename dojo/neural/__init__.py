"""The trained world action model in the Dojo: everything of ``dojo`` that imports ``wam``.

``model_io`` fits a Dojo task to a model (on ``wam.model_io``), ``env`` is the neural
simulator (``NeuralEnv``), ``controllers`` the model as a controller (``WamPolicy``) and
planning in dreams (``dream_planner``), ``controllability`` the dream against physics.
The rest of ``dojo`` (tasks, physics, rendering, planners, the episode runner) does not
depend on the model.
"""
