# The packages of this tree.
include $(sort $(wildcard $(BR2_EXTERNAL_DIRECTOR_PATH)/package/*/*.mk))
